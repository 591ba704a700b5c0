# kvnet: everything a fresh machine needs, from this file.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kvnet-setup
APT_PACKAGES := iproute2 nftables iptables tcpdump iputils-ping iputils-arping iperf3 hping3 netsniff-ng ethtool procps kmod \
	libvirt-clients libxml2-utils openvswitch-switch etcd-server etcd-client \
	qemu-system-x86 busybox-static cpio

.PHONY: setup demo test lint bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@scripts/apt-install.sh $(APT_PACKAGES)
	@[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,bench]'
	@touch $(STAMP)

demo: setup
	$(BIN)/kvnet lab demo

test: setup
	$(BIN)/ruff check kvnet tests
	$(BIN)/pytest -q -p no:cacheprovider

bench: setup
	$(BIN)/kvnet bench api
	$(BIN)/kvnet bench control

clean:
	rm -rf $(VENV) build *.egg-info
