"""A tiny Linux guest for real VMs in the lab: Debian's cloud kernel + a busybox initramfs, built once and cached.

    image = ensure_image()          # GuestImage(kernel, initrd, key); builds on first use (~10 s)
    kernel_cmdline([NicConfig("eth0", "10.0.0.5/24", "10.0.0.1", 1450)])

The kernel comes from `apt-get download linux-image-cloud-amd64` (the metapackage's dependency, i.e. the
versioned image package), unpacked with `dpkg-deb -x`; its virtio drivers are modules (`=m`), so the
initramfs carries them and `/init` loads them in dependency order. The busybox is Debian's
busybox-static. The build lives under `cache_dir()` keyed by the kernel package version and a hash of
everything else that goes in, so a new kernel or init script rebuilds and an unchanged one never does.

`/init` (GUEST_INIT): mounts proc/sys/dev, loads the virtio modules, configures every `ip=` argument of
the kernel command line in dracut's form `ip=<ip>::<gateway>:<prefixlen>:<hostname>:<dev>:off:<mtu>`
(the MAC comes from qemu's `-device virtio-net-pci,mac=`), prints READY_MARKER on the console (ttyS0)
and serves a command channel on ttyS1 (see `kvnet.virt.console`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX = Path("/bin/busybox")  # Debian busybox-static
# Dependency order: each module needs the ones before it (modules.dep of the 6.1 cloud kernel).
VIRTIO_NET_MODULES = ("virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci",
                      "failover", "net_failover", "virtio_net")
READY_MARKER = "KVNET-GUEST-READY"
DONE_MARKER = "__KVNET_DONE"
RESOLVE_TTL_S = 24 * 3600
DEFAULT_CACHE_DIRS = (Path("/var/cache/kvnet/guest"), Path.home() / ".cache/kvnet/guest")

GUEST_INIT = r"""#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /sbin /usr/bin /usr/sbin /tmp /run
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "kvnet-guest: $(uname -r), loading virtio modules"
for m in @MODULES@; do
  insmod /lib/modules/$m.ko || echo "kvnet-guest: insmod $m failed"
done
ip link set lo up

configure() {  # dracut form: ip=<ip>::<gateway>:<prefixlen>:<hostname>:<dev>:off:<mtu>
  set -f; IFS=:; set -- $1; IFS=' '; set +f
  addr=$1 gw=$3 prefix=$4 name=$5 dev=$6 mtu=$8
  n=0
  while [ ! -e /sys/class/net/$dev ] && [ $n -lt 500 ]; do n=$((n+1)); usleep 10000; done
  [ -n "$name" ] && hostname "$name"
  [ -n "$mtu" ] && ip link set dev "$dev" mtu "$mtu"
  ip addr add "$addr/$prefix" dev "$dev"
  ip link set dev "$dev" up
  [ -n "$gw" ] && ip route add default via "$gw" dev "$dev"
  echo "kvnet-guest: $dev $(cat /sys/class/net/$dev/address) $addr/$prefix gw ${gw:-none} mtu ${mtu:-default}"
}
for arg in $(cat /proc/cmdline); do
  case "$arg" in ip=*) configure "${arg#ip=}" ;; esac
done

serve() {  # one command per line: "<id> <shell command>"; answers its output, then "@DONE@ <id> <rc>"
  while read -r id line; do
    sh -c "$line" </dev/null 2>&1
    echo "@DONE@ $id $?"
  done
}
# Open ttyS1 (raw, no echo) before announcing readiness: input that arrives from then on is kept.
if [ -e /dev/ttyS1 ] && exec 3<>/dev/ttyS1 && stty -F /dev/ttyS1 raw -echo; then
  while true; do serve <&3 >&3; done &
else
  echo "kvnet-guest: no ttyS1, no command channel"
fi
echo "@READY@"
while true; do sleep 3600; done
"""


class GuestUnavailable(RuntimeError):
    """The guest kernel or busybox cannot be obtained on this machine (the message says why)."""


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path
    key: str  # <kernel package>_<version>-<hash of the initramfs inputs>


@dataclass(frozen=True)
class NicConfig:
    """What the guest's /init configures on one NIC (from the kernel command line)."""

    dev: str  # eth0, eth1, ... in the order of the -device virtio-net-pci options
    address: str  # 10.0.0.5/24
    gateway: str | None = None
    mtu: int | None = None

    def ip_param(self, hostname: str = "") -> str:
        iface = ipaddress.ip_interface(self.address)
        return (f"ip={iface.ip}::{self.gateway or ''}:{iface.network.prefixlen}:{hostname}:{self.dev}:off:"
                f"{self.mtu or ''}")


def init_script() -> str:
    return (GUEST_INIT.replace("@MODULES@", " ".join(VIRTIO_NET_MODULES))
            .replace("@READY@", READY_MARKER).replace("@DONE@", DONE_MARKER))


def kernel_cmdline(nics: Sequence[NicConfig], hostname: str = "") -> str:
    """Serial console, quiet boot, no reboot loop on panic, and one `ip=` per NIC."""
    base = ["console=ttyS0", "quiet", "loglevel=3", "panic=-1", "tsc=reliable", "no_timer_check",
            "i8042.noaux", "i8042.nokbd", "i8042.nopnp", "cryptomgr.notests", "random.trust_cpu=on", "ipv6.disable=1"]
    return " ".join([*base, *(nic.ip_param(hostname) for nic in nics)])


# -- the cache ------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """$KVNET_GUEST_CACHE, else /var/cache/kvnet/guest when writable, else ~/.cache/kvnet/guest."""
    env = os.environ.get("KVNET_GUEST_CACHE")
    if env:
        return Path(env)
    for candidate in DEFAULT_CACHE_DIRS:
        with contextlib.suppress(OSError):
            candidate.mkdir(parents=True, exist_ok=True)
            if os.access(candidate, os.W_OK):
                return candidate
    raise GuestUnavailable(f"no writable cache directory among {', '.join(map(str, DEFAULT_CACHE_DIRS))}")


def kernel_package() -> tuple[str, str]:
    """(versioned image package, its version) behind the metapackage, from the local apt cache."""
    try:
        deps = _out(["apt-cache", "depends", KERNEL_METAPACKAGE])
        package = next(line.split(":", 1)[1].strip() for line in deps.splitlines()
                       if line.strip().startswith("Depends:") and "linux-image-" in line)
        show = _out(["apt-cache", "show", "--no-all-versions", package])
        version = next(line.split(":", 1)[1].strip() for line in show.splitlines() if line.startswith("Version:"))
    except (OSError, subprocess.CalledProcessError, StopIteration) as exc:
        raise GuestUnavailable(f"cannot resolve {KERNEL_METAPACKAGE} with apt-cache ({exc}); "
                               "run `apt-get update` on a Debian host") from None
    return package, version


def inputs_hash() -> str:
    """Everything besides the kernel package that goes into the build."""
    if not BUSYBOX.exists():
        raise GuestUnavailable(f"{BUSYBOX} is missing: apt-get install busybox-static")
    digest = hashlib.sha256(init_script().encode())
    digest.update(BUSYBOX.read_bytes())
    return digest.hexdigest()[:12]


def ensure_image(cache: Path | None = None) -> GuestImage:
    """The cached kernel + initramfs, built first if missing (concurrent callers wait on a lock).

    Which kernel version is current is asked of apt-cache at most once a day (it costs ~1 s) and
    remembered in `<cache>/resolved.json`."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        package, version = _resolved_kernel(cache)
    except GuestUnavailable:
        built = _newest_build(cache)  # offline or no apt lists: any earlier build will do
        if built is None:
            raise
        return built
    key = f"{package}_{version}-{inputs_hash()}"
    target = cache / key
    image = GuestImage(target / "vmlinuz", target / "initrd.img", key)
    if image.kernel.exists() and image.initrd.exists():
        return image
    with _locked(cache / ".lock"):
        if not (image.kernel.exists() and image.initrd.exists()):
            _build(package, version, target)
    return image


def _resolved_kernel(cache: Path) -> tuple[str, str]:
    record = cache / "resolved.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        data = json.loads(record.read_text())
        if time.time() - float(data["checked_at"]) < RESOLVE_TTL_S:
            return data["package"], data["version"]
    package, version = kernel_package()
    tmp = record.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"package": package, "version": version, "checked_at": time.time()}))
    os.replace(tmp, record)
    return package, version


def _newest_build(cache: Path) -> GuestImage | None:
    builds = sorted((d for d in cache.iterdir() if (d / "vmlinuz").exists() and (d / "initrd.img").exists()
                     and d.name.endswith(inputs_hash())),
                    key=lambda d: d.stat().st_mtime)
    return GuestImage(builds[-1] / "vmlinuz", builds[-1] / "initrd.img", builds[-1].name) if builds else None


def _build(package: str, version: str, target: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="kvnet-guest-", dir=target.parent) as tmp:
        work = Path(tmp)
        proc = subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=work, capture_output=True,
                              text=True)
        debs = list(work.glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise GuestUnavailable(f"apt-get download {package}={version} failed: {proc.stderr.strip()[-500:]}")
        tree = work / "pkg"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(tree)], check=True)
        vmlinuz = next(iter((tree / "boot").glob("vmlinuz-*")))
        modules = _find_modules(tree / "lib/modules")
        staging = work / "out"
        staging.mkdir()
        shutil.copy(vmlinuz, staging / "vmlinuz")
        _write_initramfs(staging / "initrd.img", work / "root", modules)
        os.replace(staging, target)
    for old in target.parent.glob("linux-image-*"):  # earlier builds (other kernel or init): not needed
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)


def _find_modules(root: Path) -> dict[str, Path]:
    found = {p.name.removesuffix(".ko"): p for p in root.rglob("*.ko")}
    missing = [m for m in VIRTIO_NET_MODULES if m not in found]
    if missing:
        raise GuestUnavailable(f"the kernel package has no module(s) {', '.join(missing)}")
    return {m: found[m] for m in VIRTIO_NET_MODULES}


def _write_initramfs(out: Path, root: Path, modules: dict[str, Path]) -> None:
    """An uncompressed newc cpio (nothing to decompress in a TCG guest): /init, busybox, the modules."""
    for sub in ("bin", "lib/modules", "proc", "sys", "dev", "tmp"):
        (root / sub).mkdir(parents=True)
    shutil.copy(BUSYBOX, root / "bin/busybox")
    (root / "init").write_text(init_script())
    (root / "init").chmod(0o755)
    for name, path in modules.items():
        shutil.copy(path, root / "lib/modules" / f"{name}.ko")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    with open(out, "wb") as fh:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "--owner", "0:0"], cwd=root,
                       input="\n".join(files).encode() + b"\n", stdout=fh, check=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
