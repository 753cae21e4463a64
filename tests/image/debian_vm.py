"""A Debian bookworm guest (tests/image/build-image.sh) on the tests/vm
harness: same shape, sockets and channels, but a disk with systemd and
cloud-init instead of the busybox initramfs, and a NoCloud seed."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "vm"))
from vshare_vm import Guest  # noqa: E402


def build_image():
    p = subprocess.run([os.path.join(HERE, "build-image.sh")],
                       capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"build-image.sh failed: {p.stderr[-2000:]}")
    return p.stdout.split()[-1]


class DebianGuest(Guest):
    # a Debian with systemd and cloud-init under TCG, on a loaded 2-core
    # host: 120 s was seen to be too short (image.t waits as long)
    boot_timeout = 400.0

    def __init__(self, image_dir, user_data=None, **kw):
        kw.setdefault("connect_agent", False)
        kw.setdefault("start_agent", False)
        super().__init__(kernel=os.path.join(image_dir, "vmlinuz"), **kw)
        self.image_dir = image_dir
        self.user_data = user_data

    def qemu_argv(self, initrd):
        argv = super().qemu_argv(os.path.join(self.image_dir, "initrd.img"))
        i = argv.index("-append")
        argv[i + 1] = ("root=/dev/vda rw console=ttyS0 panic=-1 "
                       "memhp_default_state=online_movable " + self.extra_append)
        # A qcow2 overlay over the cached disk: the cache never changes,
        # and a second start() of the same guest is a reboot that keeps
        # what the first boot installed.
        overlay = self.path("overlay.qcow2")
        if not os.path.exists(overlay):
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b",
                            os.path.join(self.image_dir, "disk.raw"),
                            "-F", "raw", overlay], check=True)
        argv += ["-drive", f"file={overlay},format=qcow2,if=virtio"]
        if self.user_data is not None:
            seed = self.path("seed.img")
            ud = self.path("user-data")
            if not os.path.exists(seed):
                with open(ud, "wb" if isinstance(self.user_data, bytes)
                          else "w") as f:
                    f.write(self.user_data)
                subprocess.run(["cloud-localds", seed, ud], check=True)
            argv += ["-drive", f"file={seed},format=raw,if=virtio,"
                     "readonly=on"]
        return argv

    def poweroff(self, timeout=120):
        """A clean shutdown from inside (QEMU runs with -no-reboot), so
        the overlay holds a consistent file system for the next start."""
        try:
            self.shell.ls.send(b"systemctl poweroff\n")
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        self.stop()
