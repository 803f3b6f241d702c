# man.mk - lockwarden(8) and lockwarden.ini(5), generated from their one
# source with the key list taken from agent/config.def (included by the top
# Makefile).
#
#   make man           build/man/lockwarden.8 and build/man/lockwarden.ini.5
#   make install-man   installs them under $(DESTDIR)$(MANDIR)

MANDIR ?= $(PREFIX)/share/man
HOOKDIR ?= /usr/lib/lockwarden/hooks
MAN_PAGES := build/man/lockwarden.8 build/man/lockwarden.ini.5
MAN_INPUTS := packaging/man/lockwarden.man.in packaging/man/genman.py agent/config.def

.PHONY: man install-man

man: $(MAN_PAGES)

# One run writes both pages (a grouped target).
$(MAN_PAGES) &: $(MAN_INPUTS)
	/usr/bin/python3 packaging/man/genman.py --outdir build/man --version $(VERSION) \
		--sysconfdir $(SYSCONFDIR) --hookdir $(HOOKDIR)

install-man: $(MAN_PAGES)
	install -D -m 0644 build/man/lockwarden.8 $(DESTDIR)$(MANDIR)/man8/lockwarden.8
	install -D -m 0644 build/man/lockwarden.ini.5 $(DESTDIR)$(MANDIR)/man5/lockwarden.ini.5
