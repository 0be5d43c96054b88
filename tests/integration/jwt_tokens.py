#!/usr/bin/python3
"""jwt_tokens.py: JSON Web Tokens for itest_edge, made by an implementation
independent of sluice's (PyJWT with python3-cryptography, Debian's
python3-jwt), so that the ingress is tested against tokens it did not make.

usage: jwt_tokens.py OUTDIR HS256_SECRET

Writes OUTDIR/rsa-pub.pem and OUTDIR/ec-pub.pem (fresh RSA 2048 and P-256
keys; the private halves stay here) and OUTDIR/tokens.json, an object of
token name -> token."""
import base64
import hashlib
import hmac
import json
import sys
import time

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unsigned(header, payload):
    return b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())


def main():
    out, secret = sys.argv[1], sys.argv[2]
    now = int(time.time())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    rsa_pub = rsa_key.public_key().public_bytes(pem, spki)
    with open(out + "/rsa-pub.pem", "wb") as f:
        f.write(rsa_pub)
    with open(out + "/ec-pub.pem", "wb") as f:
        f.write(ec_key.public_key().public_bytes(pem, spki))

    def claims(sub, **extra):
        c = {"sub": sub, "iss": "test-idp", "aud": "sluice", "iat": now, "exp": now + 600}
        c.update(extra)
        return c

    tokens = {
        "hs256": jwt.encode(claims("jwt-hs"), secret, algorithm="HS256"),
        "rs256": jwt.encode(claims("jwt-rs"), rsa_key, algorithm="RS256"),
        "es256": jwt.encode(claims("jwt-es"), ec_key, algorithm="ES256"),
        "aud_list": jwt.encode(claims("jwt-hs", aud=["other", "sluice"]), secret, algorithm="HS256"),
        "expired": jwt.encode(claims("jwt-hs", exp=now - 3600), secret, algorithm="HS256"),
        "not_yet": jwt.encode(claims("jwt-hs", nbf=now + 3600), secret, algorithm="HS256"),
        "wrong_aud": jwt.encode(claims("jwt-hs", aud="someone-else"), secret, algorithm="HS256"),
        "wrong_iss": jwt.encode(claims("jwt-hs", iss="evil-idp"), secret, algorithm="HS256"),
        "no_exp": jwt.encode({"sub": "jwt-hs", "iss": "test-idp", "aud": "sluice"}, secret,
                             algorithm="HS256"),
        "wrong_secret": jwt.encode(claims("jwt-hs"), secret + "x", algorithm="HS256"),
        "routes_echo": jwt.encode(claims("jwt-hs", routes=["echo"]), secret, algorithm="HS256"),
        # alg none: no signature at all.
        "none": unsigned({"alg": "none", "typ": "JWT"}, claims("jwt-hs")) + ".",
    }
    # Algorithm confusion: an HS256 token whose HMAC key is the RSA public
    # key's PEM bytes, which a verifier that takes alg from the token would
    # accept with the RS256 key. PyJWT refuses to make it, so it is made by hand.
    head = unsigned({"alg": "HS256", "typ": "JWT"}, claims("jwt-rs"))
    tokens["confusion"] = head + "." + b64url(hmac.new(rsa_pub, head.encode(), hashlib.sha256).digest())
    # The RS256 token with its signature bit-flipped.
    rs = tokens["rs256"]
    sig = bytearray(base64.urlsafe_b64decode(rs.split(".")[2] + "=="))
    sig[0] ^= 1
    tokens["rs256_forged"] = rs.rsplit(".", 1)[0] + "." + b64url(bytes(sig))
    with open(out + "/tokens.json", "w") as f:
        json.dump(tokens, f)


if __name__ == "__main__":
    main()
