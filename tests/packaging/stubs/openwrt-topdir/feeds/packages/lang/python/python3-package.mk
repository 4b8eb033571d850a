# Test stand-in for the packages feed's lang/python/python3-package.mk,
# written for these tests from what the real one does for a Py3Package:
#  - Package/<pkg>/install: Py3Package/<pkg>/install, then the default
#    filespec (+|$(PYTHON3_PKG_DIR)) copied from $(PKG_INSTALL_DIR),
#    byte-compiled with the host python3 (compileall -b: foo.pyc next to
#    foo.py), sources deleted, empty dirs deleted, /usr/bin shebangs fixed;
#  - Package/<pkg>-src/install: the same tree with only the .py files.
# The host python3 stands in for the target's here.
PYTHON3_VERSION:=$(shell python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PYTHON3_PKG_DIR:=/usr/lib/python$(PYTHON3_VERSION)/site-packages
HOST_PYTHON3_BIN:=python3

PYTHON3_PKG_BUILD?=1
ifeq ($(strip $(PYTHON3_PKG_BUILD)),1)
  define Build/Compile
	@echo "stand-in python3-package.mk: the PEP 517 build is not emulated" >&2; false
  endef
endif

define Py3Package
  define Package/$(1)-src
    $(call Package/$(1))
    DEPENDS:=
    TITLE+= (sources)
  endef

  ifndef Py3Package/$(1)/install
    define Py3Package/$(1)/install
	if [ -d $(PKG_INSTALL_DIR)/usr/bin ]; then $(INSTALL_DIR) $$(1)/usr/bin; $(CP) $(PKG_INSTALL_DIR)/usr/bin/* $$(1)/usr/bin/; fi
    endef
  endif

  define Package/$(1)/install
	$$(call Py3Package/$(1)/install,$$(1))
	$(INSTALL_DIR) $$(1)$(PYTHON3_PKG_DIR)
	$(CP) $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/. $$(1)$(PYTHON3_PKG_DIR)/
	$(FIND) $$(1) -name '*.exe' -delete
	$(HOST_PYTHON3_BIN) -m compileall -q -r 20 -b -d '/' $$(1)
	$(FIND) $$(1) -type f -name '*.py' -delete
	$(FIND) $$(1) -mindepth 1 -empty -type d -delete
	if [ -d "$$(1)/usr/bin" ]; then $(SED) '1!b;s,^#!.*python.*,#!/usr/bin/python3,' $$(1)/usr/bin/*; fi
  endef

  define Package/$(1)-src/install
	$$(call Py3Package/$(1)/install,$$(1))
	$(INSTALL_DIR) $$(1)$(PYTHON3_PKG_DIR)
	$(CP) $(PKG_INSTALL_DIR)$(PYTHON3_PKG_DIR)/. $$(1)$(PYTHON3_PKG_DIR)/
	$(FIND) $$(1) -not -type d -not -name '*.py' -delete
	$(FIND) $$(1) -mindepth 1 -empty -type d -delete
  endef
endef
