#!/usr/bin/env python3
"""Writes the TLS test certificates into a directory, fresh at every test run (nothing is committed).

Usage: make_certs.py DIR

Files (PEM; every key is P-256):
  ca.pem                    the test CA the collector's and the client's certificates chain to
  other-ca.pem              a second CA that signed nothing here (the "wrong CA" case)
  server.pem, server.key    for localhost and 127.0.0.1, valid from a day ago for 30 days
  expired.pem, expired.key  the same names, valid from 30 days ago until yesterday
  wronghost.pem, wronghost.key  valid now, for collector.example only
  client.pem, client.key    a client certificate (mutual TLS) from ca.pem
"""
import datetime
import ipaddress
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def key():
    return ec.generate_private_key(ec.SECP256R1())


def name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def write(path, *pems):
    with open(path, "wb") as f:
        for pem in pems:
            f.write(pem)


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(k):
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_ca(common, now):
    k = key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(common))
        .issuer_name(name(common))
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(k, hashes.SHA256())
    )
    return k, cert


def make_leaf(ca_key, ca_cert, common, names, before, after, usage):
    k = key()
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common))
        .issuer_name(ca_cert.subject)
        .public_key(k.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(before)
        .not_valid_after(after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return k, builder.sign(ca_key, hashes.SHA256())


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, ca = make_ca("Spillway Test CA", now)
    _, other = make_ca("Spillway Other CA", now)
    write(os.path.join(out, "ca.pem"), cert_pem(ca))
    write(os.path.join(out, "other-ca.pem"), cert_pem(other))
    day = datetime.timedelta(days=1)
    leaves = {
        "server": ("localhost", ["localhost", "127.0.0.1"], now - day, now + 30 * day, ExtendedKeyUsageOID.SERVER_AUTH),
        "expired": ("localhost", ["localhost", "127.0.0.1"], now - 30 * day, now - day, ExtendedKeyUsageOID.SERVER_AUTH),
        "wronghost": ("collector.example", ["collector.example"], now - day, now + 30 * day, ExtendedKeyUsageOID.SERVER_AUTH),
        "client": ("spillway-test-client", [], now - day, now + 30 * day, ExtendedKeyUsageOID.CLIENT_AUTH),
    }
    for stem, (common, names, before, after, usage) in leaves.items():
        k, cert = make_leaf(ca_key, ca, common, names, before, after, usage)
        write(os.path.join(out, stem + ".pem"), cert_pem(cert))
        write(os.path.join(out, stem + ".key"), key_pem(k))
    print("make_certs: wrote", ", ".join(sorted(os.listdir(out))), "to", out)


if __name__ == "__main__":
    main()
