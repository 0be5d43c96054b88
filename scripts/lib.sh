# lib.sh: shell helpers shared by the scripts (sourced, not run).

# free_port prints a loopback TCP port that was free a moment ago: the kernel
# picks it when python3 binds port 0; without python3, a random high port.
free_port() {
  python3 - 2>/dev/null <<'PY' || shuf -i 20000-59999 -n 1
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}
