# lockwarden-app-settings.sh - app settings for SSH sessions of an App Service
# custom container (installed as /etc/profile.d/lockwarden-app-settings.sh;
# login shells read it through /etc/profile).
#
# App Service gives app settings to the container's main process as
# environment variables, but an SSH login starts from sshd, which does not
# pass them on. The lockwarden entrypoint saves its environment at container
# start in /run/lockwarden/environ, root's alone (folder 0700, file 0600),
# because app settings hold secrets (IDENTITY_HEADER, connection strings).
# This file holds no value itself, only the code that reads that file: a
# root login (the portal's SSH console logs in as root) gets the settings,
# any other user gets nothing, since the file cannot be read.
#
# The session's own variables (HOME, USER, TERM, SSH_*, ...) and the shell's
# special ones are left alone; everything else is exported as the platform
# set it, PATH included.

lockwarden_env_file=${LOCKWARDEN_ENV_FILE:-/run/lockwarden/environ}
if [ -f "$lockwarden_env_file" ] && [ ! -L "$lockwarden_env_file" ] &&
	[ -r "$lockwarden_env_file" ]; then
	# Entries end in NUL bytes; a newline inside a value travels as \001
	# so that every entry is one line, and is put back below.
	lockwarden_soh=$(printf '\001')
	while IFS= read -r lockwarden_entry; do
		lockwarden_name=${lockwarden_entry%%=*}
		case $lockwarden_name in
		"$lockwarden_entry" | "" | [0-9]* | *[!A-Za-z0-9_]*) continue ;;
		HOME | USER | LOGNAME | SHELL | TERM | MAIL | PWD | OLDPWD | SHLVL | _ | \
			HOSTNAME | SSH_* | IFS | PS1 | PS2 | PS4 | ENV | BASH_ENV | \
			PROMPT_COMMAND | SHELLOPTS | BASHOPTS | UID | EUID | PPID | \
			GROUPS | BASHPID | lockwarden_*) continue ;;
		esac
		lockwarden_value=${lockwarden_entry#*=}
		case $lockwarden_value in
		*"$lockwarden_soh"*)
			lockwarden_value=$(printf '%s' "$lockwarden_value" | tr '\001' '\n') ;;
		esac
		export "$lockwarden_name=$lockwarden_value"
	done <<LOCKWARDEN_EOF
$(tr '\n\000' '\001\n' <"$lockwarden_env_file" 2>/dev/null)
LOCKWARDEN_EOF
	unset lockwarden_soh lockwarden_entry lockwarden_name lockwarden_value
fi
unset lockwarden_env_file
