"""ucspi.runtime.exitcodes: djb's error_temp (which errno values mean "try again later")."""

import errno

import pytest

from ucspi.runtime import exitcodes

# error_temp.c's list, as Linux has it (no EPROCLIM).
TEMPORARY = ("EINTR", "ENOMEM", "ETXTBSY", "EIO", "ETIMEDOUT", "EWOULDBLOCK", "EAGAIN",
             "EDEADLK", "EBUSY", "ENFILE", "EMFILE", "EFBIG", "ENOSPC", "ENETDOWN",
             "ENETUNREACH", "ENETRESET", "ECONNABORTED", "ECONNRESET", "ENOBUFS",
             "ETOOMANYREFS", "ECONNREFUSED", "EHOSTDOWN", "EHOSTUNREACH", "EUSERS", "EDQUOT",
             "ESTALE", "ENOLCK")
# Permanent, some of them once taken for temporary by a drifted copy (ESHUTDOWN, EREMOTE).
PERMANENT = ("ENOENT", "EACCES", "EPERM", "ENOEXEC", "ENOTDIR", "EISDIR", "ELOOP",
             "ENAMETOOLONG", "E2BIG", "ESHUTDOWN", "EREMOTE", "EROFS")


@pytest.mark.parametrize("name", TEMPORARY)
def test_error_temp_c_list_is_temporary(name):
    assert exitcodes.error_temp(getattr(errno, name))


@pytest.mark.parametrize("name", PERMANENT)
def test_other_errno_values_are_permanent(name):
    assert not exitcodes.error_temp(getattr(errno, name))


def test_no_error_is_not_temporary():
    assert not exitcodes.error_temp(0)
