# systemd.mk - the systemd unit, generated from its template with the
# install paths (included by the top Makefile). Not `make unit`: that
# target runs the unit tests.
#
#   make systemd-unit   build/systemd/lockwarden.service for BINDIR/SYSCONFDIR
#   make install-unit   installs it into $(DESTDIR)$(UNITDIR)
#
# UNIT_OUT names another output file (the tests write one per temporary
# BINDIR). The file is regenerated on every run, because BINDIR and
# SYSCONFDIR come from the command line and a stale path would go unnoticed;
# cmp keeps its mtime when nothing changed.

UNIT_TEMPLATE := packaging/systemd/lockwarden.service.in
UNIT_OUT ?= build/systemd/lockwarden.service

.PHONY: systemd-unit install-unit

systemd-unit:
	@mkdir -p $(dir $(UNIT_OUT))
	@sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		$(UNIT_TEMPLATE) >$(UNIT_OUT).tmp
	@if grep -n '@[A-Z_]*@' $(UNIT_OUT).tmp; then \
		echo "$(UNIT_OUT): placeholder left unfilled" >&2; rm -f $(UNIT_OUT).tmp; exit 1; fi
	@if cmp -s $(UNIT_OUT).tmp $(UNIT_OUT); then rm -f $(UNIT_OUT).tmp; \
		else mv $(UNIT_OUT).tmp $(UNIT_OUT) && echo "  GEN  $(UNIT_OUT)"; fi

install-unit: systemd-unit
	install -D -m 0644 $(UNIT_OUT) $(DESTDIR)$(UNITDIR)/lockwarden.service
