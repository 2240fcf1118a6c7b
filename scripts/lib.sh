# Shared by mco's scripts: puts a nats-server found by install-deps.sh on PATH.
# shellcheck shell=bash
mco_nats_path() {
  local d
  for d in /usr/sbin /usr/local/bin "$HOME/.local/bin" "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)"; do
    if [ -n "$d" ] && [ -x "$d/nats-server" ]; then
      case ":$PATH:" in *":$d:"*) ;; *) PATH="$PATH:$d" ;; esac
    fi
  done
  export PATH
}
