#!/bin/sh
# Makes the secret files deploy/compose/compose.yaml reads, in deploy/compose/secrets/ (never committed: see
# ../.gitignore there). Run it once before the first `docker compose up`; it keeps the files that already exist,
# so running it again changes nothing (PostgreSQL keeps the password of its first start). --force makes new ones:
# then also remove the postgres-data volume, or the database refuses the new password.
#
#   deploy/compose/init-secrets.sh [--force]
#
# Random values come from openssl, else from Python's `secrets`. Every file is mode 0600; nothing is printed
# but the names of the files written.
set -eu

dir=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)/secrets
force=no
case "${1:-}" in
  --force) force=yes ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

random_hex() {  # $1 bytes of randomness, as hex (URL-safe, so it fits in the database URL as it is)
  if command -v openssl > /dev/null 2>&1; then
    openssl rand -hex "$1"
  elif command -v python3 > /dev/null 2>&1; then
    python3 -c 'import secrets, sys; print(secrets.token_hex(int(sys.argv[1])))' "$1"
  else
    echo "init-secrets.sh needs openssl or python3 to make random secrets" >&2
    exit 1
  fi
}

umask 077
mkdir -p "$dir"
chmod 700 "$dir"

write() {  # write NAME VALUE: the file NAME holding VALUE, unless it exists (and no --force)
  if [ -e "$dir/$1" ] && [ "$force" = no ]; then
    echo "kept    secrets/$1"
    return
  fi
  printf '%s' "$2" > "$dir/$1.new"  # no newline: every reader takes the file as it is
  chmod 600 "$dir/$1.new"
  mv "$dir/$1.new" "$dir/$1"
  echo "written secrets/$1"
}

if [ -e "$dir/postgres-password" ] && [ "$force" = no ]; then
  password=$(cat "$dir/postgres-password")
else
  password=$(random_hex 24)
fi
write postgres-password "$password"
write database-url "postgresql+psycopg://cact:$password@postgres:5432/cact"
write operator-token "$(random_hex 32)"
write grafana-admin-password "$(random_hex 16)"
# The SI ASN emulator's own demo credentials (sinks/siasn/emulator/config.py): public values it accepts, not
# secrets. For the real SI ASN, write BKN's credentials into these five files instead.
write siasn-consumer-key cact-emulator
write siasn-consumer-secret cact-emulator-secret
write siasn-sso-client-id cact-emulator
write siasn-sso-username cact-operator
write siasn-sso-password cact-emulator-password
