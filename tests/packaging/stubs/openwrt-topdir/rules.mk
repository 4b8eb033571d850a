# Test stand-in for an OpenWrt build tree's rules.mk, written for these tests:
# only the variables feeds/pyprocd/pyprocd/Makefile and the stand-in
# python3-package.mk use, with the meaning OpenWrt gives them.
INCLUDE_DIR:=$(TOPDIR)/include
BUILD_DIR?=$(TOPDIR)/build_dir
DL_DIR?=$(TOPDIR)/dl
# The cross toolchain (the tests pass a stand-in compiler as TARGET_CC).
TARGET_CC?=cc
TARGET_CFLAGS?=-Os -pipe
TARGET_CPPFLAGS?=-I$(TOPDIR)/staging_dir/target/usr/include
TARGET_LDFLAGS?=-L$(TOPDIR)/staging_dir/target/usr/lib
empty:=
space:=$(empty) $(empty)
comma:=,
define newline


endef
INSTALL_DIR:=install -d -m0755
INSTALL_BIN:=install -m0755
INSTALL_DATA:=install -m0644
CP:=cp -fpR
FIND:=find
SED:=sed -i -e
