# deb.mk - the Debian package (included by the top Makefile).
#
#   make deb        build/deb/lockwarden_$(VERSION)_<arch>.deb
#   make deb-lint   lintian on it
#
# dpkg-buildpackage runs in a copy of the tree under build/deb/, with
# packaging/debian/ copied to debian/ there, so that neither debian/ nor the
# build's leftovers (debian/lockwarden/, *.substvars, ...) ever appear in the
# work tree. The .deb, .buildinfo and .changes land in build/deb/.
#
# make exports the variables given on its command line (`make WERROR=1
# check`) to every recipe; the package build must not inherit them, so they
# are removed from its environment (debian/rules sets its own).

DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null)
DEB_STAGE := build/deb/lockwarden-$(VERSION)
DEB_FILE := build/deb/lockwarden_$(VERSION)_$(DEB_ARCH).deb
DEB_CLEAN_ENV := MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES WERROR SAN BUILD CC CFLAGS \
	CPPFLAGS LDFLAGS PKG_CONFIG PREFIX DESTDIR BINDIR SYSCONFDIR UNITDIR MANDIR HOOKDIR \
	UNIT_OUT
# What goes into the copy; the .deb is rebuilt when any of it changes.
DEB_TREE := Makefile README.md LICENSE agent conf docs packaging
DEB_INPUTS := Makefile README.md LICENSE $(wildcard agent/* conf/* docs/* packaging/* \
	packaging/*/* packaging/*/*/*)

.PHONY: deb deb-lint

deb: $(DEB_FILE)

$(DEB_FILE): $(DEB_INPUTS)
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null || { \
		echo "make deb needs dpkg-dev and debhelper:" \
			"apt-get install dpkg-dev debhelper" >&2; exit 1; }
	rm -rf $(DEB_STAGE)
	mkdir -p $(DEB_STAGE)
	cp -a $(DEB_TREE) $(DEB_STAGE)/
	cp -a packaging/debian $(DEB_STAGE)/debian
	cd $(DEB_STAGE) && env $(addprefix -u ,$(DEB_CLEAN_ENV)) dpkg-buildpackage -us -uc -b
	@test -f $@ || { echo "dpkg-buildpackage made no $@" >&2; exit 1; }

deb-lint: $(DEB_FILE)
	lintian --info --display-info $(DEB_FILE)
