#!/bin/sh
# stage.sh SRC OUT - stages what a container image needs from lockwarden
# under OUT, laid out as / so that one `COPY --from=<stage> OUT/ /` installs
# it into any base image: the static binary (make static, run before), the
# sample configuration, the hooks, the entrypoint, the login profile that
# gives root's SSH sessions the app settings, and the sshd settings for
# the portal's SSH console on port 2222 (used only where openssh-server is
# installed).
set -eu

src=${1:?usage: stage.sh SRC OUT}
out=${2:?usage: stage.sh SRC OUT}

install -D -m 0755 "$src/build/static/lockwarden" "$out/usr/bin/lockwarden"
install -D -m 0644 "$src/conf/lockwarden.ini" "$out/etc/lockwarden/lockwarden.ini"
install -D -m 0755 "$src/packaging/hooks/restart-site" "$out/usr/lib/lockwarden/hooks/restart-site"
install -D -m 0755 "$src/packaging/hooks/restart-container" \
	"$out/usr/lib/lockwarden/hooks/restart-container"
install -D -m 0755 "$src/packaging/container/entrypoint.sh" \
	"$out/usr/lib/lockwarden/container/entrypoint.sh"
install -D -m 0644 "$src/packaging/container/profile.sh" \
	"$out/etc/profile.d/lockwarden-app-settings.sh"
install -D -m 0644 "$src/packaging/container/sshd_config" \
	"$out/etc/ssh/sshd_config.d/app-service.conf"
