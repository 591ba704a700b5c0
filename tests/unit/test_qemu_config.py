"""The guest's kernel command line, /init and qemu's argv (pure; the e2e tests boot them for real)."""

from __future__ import annotations

from pathlib import Path

from kvnet.virt.guest import VIRTIO_NET_MODULES, GuestImage, NicConfig, init_script, kernel_cmdline
from kvnet.virt.qemu import QemuNic, qemu_argv


def test_ip_params_in_dracut_form() -> None:
    assert NicConfig("eth0", "10.0.0.5/24", "10.0.0.1", 1450).ip_param("vm1") == \
        "ip=10.0.0.5::10.0.0.1:24:vm1:eth0:off:1450"
    assert NicConfig("eth1", "203.0.113.7/24").ip_param() == "ip=203.0.113.7:::24::eth1:off:"
    line = kernel_cmdline([NicConfig("eth0", "10.0.0.5/24"), NicConfig("eth1", "203.0.113.7/24", "203.0.113.1")])
    assert "console=ttyS0" in line and "ipv6.disable=1" in line
    assert line.endswith("ip=10.0.0.5:::24::eth0:off: ip=203.0.113.7::203.0.113.1:24::eth1:off:")


def test_init_loads_the_virtio_modules_in_dependency_order() -> None:
    script = init_script()
    assert script.startswith("#!/bin/busybox sh\n") and "@" not in script.replace("$@", "")
    assert f"for m in {' '.join(VIRTIO_NET_MODULES)}; do" in script
    assert VIRTIO_NET_MODULES.index("virtio_ring") < VIRTIO_NET_MODULES.index("virtio_pci") \
        < VIRTIO_NET_MODULES.index("net_failover") < VIRTIO_NET_MODULES.index("virtio_net")


def test_qemu_argv_taps_nics_and_pause() -> None:
    image = GuestImage(Path("/c/vmlinuz"), Path("/c/initrd.img"), "k")
    argv = qemu_argv(image, [QemuNic("kvt-0123456789", "fa:16:3e:00:00:01", 1450),
                             QemuNic("kvt-abcdefabcd", "fa:16:3e:00:00:02")],
                     "console=ttyS0", shell_socket=Path("/l/g.shell"), qmp_socket=Path("/l/g.qmp"),
                     paused=True, accel="tcg")
    joined = " ".join(argv)
    assert "-machine pc,accel=tcg -cpu max" in joined and "-nographic" in argv and argv[-1] == "-S"
    assert "-netdev tap,id=n0,ifname=kvt-0123456789,script=no,downscript=no,vhost=off" in joined
    assert "-device virtio-net-pci,netdev=n0,mac=fa:16:3e:00:00:01,addr=0x3,romfile=,host_mtu=1450" in joined
    assert "-device virtio-net-pci,netdev=n1,mac=fa:16:3e:00:00:02,addr=0x4,romfile= " in joined + " "
    assert "-serial stdio -serial unix:/l/g.shell,server=on,wait=off" in joined
    assert "-qmp unix:/l/g.qmp,server=on,wait=off" in joined
    assert "-cpu host" in " ".join(qemu_argv(image, [], "", shell_socket=Path("s"), qmp_socket=Path("q"),
                                            accel="kvm"))
