# pyprocd — see README.md. `make run` starts a demo, `make test` runs the tests.
PYTHON ?= python3
export PYTHONPATH := $(CURDIR)/src$(if $(PYTHONPATH),:$(PYTHONPATH))
PYTEST_ARGS ?=

.PHONY: test run bench soak lint ipk clean qemu-test qemu-images

# PYPROCD_HOST_GUARD: every test fails if it touched the host's own pyprocd/UCI files
test:
	PYPROCD_HOST_GUARD=1 $(PYTHON) -m pytest -q $(PYTEST_ARGS) tests

run:
	$(PYTHON) -m pyprocd.demo

bench:
	$(PYTHON) -m bench

# 10,000 set/delete/signal/kill cycles against one daemon; SOAK_ARGS="--cycles N --seed S"
soak:
	$(PYTHON) -m bench.soak $(SOAK_ARGS)

# needs ruff: pip install ruff
lint:
	$(PYTHON) -m ruff check src tests bench images

# dist/pyprocd_<version>-r<release>_all.ipk for opkg, no OpenWrt SDK needed
# (see openwrt/README.md); IPK_PYTHON=3.13 targets another router python3.
IPK_OUT ?= dist
ipk:
	$(PYTHON) tools/ipk/mkipk.py --out $(IPK_OUT) $(if $(IPK_PYTHON),--python-version $(IPK_PYTHON))

# pyprocd on emulated routers (images/README.md): malta mipsel, armvirt 32/64.
# ARCH=mipsel|armhf|arm64 (default: all three); needs root, qemu-system-*,
# qemu-user-static + binfmt, mmdebstrap, cpio, busybox (.ci/run installs them).
qemu-test:
	$(PYTHON) images/qemu_test.py $(ARCH)

# only the cached Debian bases (kernel + root), e.g. for PYPROCD_FOREIGN_PYTHON
qemu-images:
	$(PYTHON) images/qemu_test.py --build-only $(ARCH)

clean:
	rm -rf build dist .pytest_cache src/*.egg-info
