"""Whether /dev/kvm is usable here, judged as the product judges it (hosts of this
kind differ: some have none, some have one)."""
import fcntl
import os
import stat

KVM_GET_API_VERSION = 0xAE00  # _IO(KVMIO, 0x00)


def kvm_device_usable() -> bool:
    """/dev/kvm as the product judges it (util/kvm_dev.h): a character device that
    opens read-write, answers the stable API (12), and that the unprivileged VMM may
    open through its group or its other bits."""
    try:
        st = os.stat("/dev/kvm")
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION)
    except OSError:
        version = -1
    finally:
        os.close(fd)
    m = st.st_mode
    return stat.S_ISCHR(m) and version == 12 and ((m & 0o006) == 0o006 or (m & 0o060) == 0o060)
