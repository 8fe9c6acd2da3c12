#!/bin/sh
# Writes docker/secrets/* for docker/compose.yaml once: random passwords, the database URL
# that carries one of them, and a self-signed certificate for nginx (replace it with a real one).
set -eu
dir="$(dirname "$0")/secrets"
# The folder is private on the host; the files are readable inside the containers, whose
# users are not root (compose bind-mounts file secrets as they are).
mkdir -p -m 700 "$dir"
umask 022
[ -s "$dir/postgres_password" ] || openssl rand -hex 24 > "$dir/postgres_password"
[ -s "$dir/s3_access_key" ] || echo vospace > "$dir/s3_access_key"
[ -s "$dir/s3_secret_key" ] || openssl rand -hex 24 > "$dir/s3_secret_key"
[ -s "$dir/preauth_secret" ] || openssl rand -hex 32 > "$dir/preauth_secret"
echo "postgresql+psycopg://vospace:$(cat "$dir/postgres_password")@postgres/vospace" > "$dir/database_url"
# localhost and the session hosts (<session id>.sessions.localhost, VOSPACE_SESSION_DOMAIN).
[ -s "$dir/tls_cert" ] || openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,DNS:*.sessions.localhost" \
    -keyout "$dir/tls_key" -out "$dir/tls_cert" 2>/dev/null
echo "secrets in $dir"
