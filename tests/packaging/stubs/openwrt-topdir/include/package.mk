# Test stand-in for OpenWrt's include/package.mk, written for these tests.
#
# BuildPackage reads the package's fields by evaluating Package/<name>, as
# the real one does, and adds two targets instead of building an .ipk:
#   mock-info     prints the fields (NAME=value lines)
#   mock-install  runs Build/Prepare, Build/Compile, then Package/<name>/install
#                 into $(MOCK_DEST)/<name>, as package-ipkg.mk does into the
#                 ipkg directory, and writes $(MOCK_DEST)/<name>.conffiles
PKG_BUILD_DIR?=$(BUILD_DIR)/$(PKG_NAME)-$(PKG_VERSION)
PKG_INSTALL_DIR?=$(PKG_BUILD_DIR)/ipkg-install

# The default preparation of a package with a source tarball: unpack
# $(DL_DIR)/$(PKG_SOURCE) into $(PKG_BUILD_DIR) without its top directory
# (the real one also applies patches/; download and hash check are not
# emulated: the tests put the tarball in DL_DIR).
define Build/Prepare
$(if $(PKG_SOURCE),mkdir -p $(PKG_BUILD_DIR) && tar -C $(PKG_BUILD_DIR) --strip-components=1 -xf $(DL_DIR)/$(PKG_SOURCE))
endef
define Build/Configure
endef
define Build/Compile
endef

.PHONY: mock-info mock-install mock-built

mock-built:
	rm -rf $(PKG_BUILD_DIR)
	$(call Build/Prepare)
	$(call Build/Configure)
	$(call Build/Compile)

define BuildPackage
  SECTION:=
  CATEGORY:=
  TITLE:=
  DEPENDS:=
  PKGARCH:=
  URL:=
  $(eval $(Package/$(1)))
  MOCK_FIELDS_$(1):=SECTION=$(SECTION)|CATEGORY=$(CATEGORY)|TITLE=$(TITLE)|DEPENDS=$(strip $(DEPENDS))|PKGARCH=$(PKGARCH)|URL=$(URL)

  mock-info: mock-info-$(1)
  mock-info-$(1):
	@echo "PACKAGE=$(1)"
	@echo "PKG_NAME=$(PKG_NAME)|PKG_VERSION=$(PKG_VERSION)|PKG_RELEASE=$(PKG_RELEASE)|PKG_LICENSE=$(PKG_LICENSE)|PKG_MAINTAINER=$(PKG_MAINTAINER)|PKG_BUILD_DEPENDS=$(PKG_BUILD_DEPENDS)" | tr '|' '\n'
	@echo "$$(MOCK_FIELDS_$(1))" | tr '|' '\n'
	@echo "PKG_SOURCE=$(PKG_SOURCE)|PKG_SOURCE_URL=$(PKG_SOURCE_URL)|PKG_HASH=$(PKG_HASH)|PKG_BUILD_DIR=$(PKG_BUILD_DIR)|PKG_LICENSE_FILES=$(PKG_LICENSE_FILES)" | tr '|' '\n'
	@echo "SOURCE_DIR=$(PYPROCD_SOURCE_DIR)"

  mock-install: mock-install-$(1)
  mock-install-$(1): mock-built
	rm -rf $(MOCK_DEST)/$(1)
	mkdir -p $(MOCK_DEST)/$(1)
	$$(call Package/$(1)/install,$(MOCK_DEST)/$(1))
	printf '%s\n' $$(strip $$(Package/$(1)/conffiles)) > $(MOCK_DEST)/$(1).conffiles
endef
