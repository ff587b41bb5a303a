"""The smallest fixes we apply to pyghmi 1.6.19 (pinned in pyproject.toml), all in this module.

Each fix names the defect it removes; tests/test_pyghmi_fixes.py fails on unpatched pyghmi.

1. Client and server: ``session._io_sendto`` switched the *shared* UDP socket to blocking mode
   from the calling thread while pyghmi's I/O thread reads the same socket with non-blocking
   recvfrom. When the two interleave, the I/O thread blocks in recvfrom forever and every BMC
   session of the process stops answering. Fixed: sockets stay non-blocking; a full send buffer
   waits for writability with a bound instead.
2. Server: RMCP+ Open Session always answered cipher suite 3 (RAKP-HMAC-SHA1) while the pyghmi
   client proposes suite 17 (RAKP-HMAC-SHA256) first, so the two could not talk. Fixed: the server
   honours suite 17 and 3 as proposed, answers "no cipher suite match" (0x11) to anything else,
   and lists both in Get Channel Cipher Suites.
3. Server: a packet for a client address whose session entry was dropped went to
   ``ServerSession.sessionless_data``, which does not exist; the AttributeError killed the listen
   loop under concurrent clients. Fixed: a server session hands such packets to its BMC.
4. Server: RAKP 1 with an unknown user name, and RAKP 3 with a bad key exchange code, were
   silently dropped (the client waited for its timeout). Fixed: RAKP 2 answers 0x0D (unauthorized
   name) and RAKP 4 answers 0x0F (invalid integrity check value), as real BMCs do.

5. Client: ``Session.awaitresponse`` queued its wake-up with the I/O thread *after* the answer
   could already have been read into the session's queue; the wake-up then waited for a packet
   that had come, and the call sat until pyghmi's retry timer (0.5-1 s) although its answer was
   there. Fixed: a waiting caller looks at its queue again at least every 50 ms.
6. Client: ``Session.send_payload`` transmitted (and took WAITING_SESSIONS) while holding
   KEEPALIVE_SESSIONS, while ``awaitresponse``/``wait_for_rsp`` take the two locks the other way
   round: a lock-order deadlock that froze a whole process, triggered by retransmissions to
   hung BMCs. Fixed: the transmit runs with KEEPALIVE_SESSIONS released.

The client-side ``IpmiException(None)`` on an unreachable BMC is not patched here: the IPMI driver
(drivers.bmc.ipmi) turns it into an error that names the BMC and what did not answer.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import select
import struct
from typing import Any

import pyghmi.ipmi.private.serversession as serversession
import pyghmi.ipmi.private.session as ipmisession
from pyghmi.ipmi.private import constants

PYGHMI_VERSION = "1.6.19"

# RMCP+ status codes (IPMI 2.0 table 13-15)
_NO_CIPHER_SUITE_MATCH = 0x11
_UNAUTHORIZED_NAME = 0x0D
_INVALID_INTEGRITY_CHECK = 0x0F

# (authentication, integrity, confidentiality) algorithm numbers -> (hash, ICV length)
_SUITES: dict[tuple[int, int, int], tuple[Any, int]] = {
    (3, 4, 1): (hashlib.sha256, 16),  # cipher suite 17
    (1, 1, 1): (hashlib.sha1, 12),  # cipher suite 3
}
# Get Channel Cipher Suites records: start-of-record 0xC0, suite id, auth, integrity | 0x40,
# confidentiality | 0x80 (IPMI 2.0 table 22-19)
_CIPHER_RECORDS = bytes([0xC0, 0x11, 0x03, 0x44, 0x81, 0xC0, 0x03, 0x01, 0x41, 0x81])

_applied = False


def _sendto(mysocket: Any, packet: Any, sockaddr: Any) -> None:
    """Fix 1: never touch the blocking mode of a socket another thread reads."""
    if hasattr(mysocket, "fd"):  # eventlet's green socket
        mysocket = mysocket.fd
    for _ in range(2):
        try:
            mysocket.sendto(packet, sockaddr)
            return
        except BlockingIOError:
            # send buffer full: wait (bounded) for room, then one more try (poll, not select:
            # the lab's descriptors go past select()'s 1024)
            poller = select.poll()
            poller.register(mysocket, select.POLLOUT)
            poller.poll(500)
        except OSError:
            return  # as before: UDP is lossy, the session's retry timer resends


def _open_session_response(self: Any, request: bytearray) -> bytearray:
    """Fix 2: answer the cipher suite the client proposed, when we have it."""
    tag = request[0]
    self.clientsessionid = request[4:8]
    self.managedsessionid = os.urandom(4)
    self.privlevel = 4
    algs = (
        (request[12], request[20] & 0x3F, request[28] & 0x3F) if len(request) >= 32 else (1, 1, 1)
    )
    suite = _SUITES.get(algs)
    if suite is None:
        return bytearray([tag, _NO_CIPHER_SUITE_MATCH, 0, 0]) + bytes(self.clientsessionid)
    self.currhashlib, self.currhashlen = suite
    auth, integrity, conf = algs
    return (
        bytearray([tag, 0, self.privlevel, 0])
        + bytes(self.clientsessionid)
        + bytes(self.managedsessionid)
        + bytearray([0, 0, 0, 8, auth, 0, 0, 0])
        + bytearray([1, 0, 0, 8, integrity, 0, 0, 0])
        + bytearray([2, 0, 0, 8, conf, 0, 0, 0])
    )


def _got_rakp1(self: Any, data: bytearray) -> None:
    tag = data[0]
    self.Rm = data[8:24]
    self.rolem = data[24]
    self.maxpriv = self.rolem & 0b111
    namelen = data[27]
    self.username = bytes(data[28 : 28 + namelen])
    password = self.authdata.get(self.username.decode("utf-8", "replace")) if namelen else None
    if password is None:  # fix 4: say so instead of letting the client time out
        self.send_payload(
            bytearray([tag, _UNAUTHORIZED_NAME, 0, 0]) + self.clientsessionid,
            constants.payload_types["rakp2"],
            retry=False,
        )
        return
    self.uuiddata = self.uuid.bytes
    self.Rc = os.urandom(16)
    self.kuid = password.encode("utf-8")
    if self.kg is None:
        self.kg = self.kuid
    hmacdata = (
        self.clientsessionid
        + self.managedsessionid
        + self.Rm
        + self.Rc
        + self.uuiddata
        + bytearray([self.rolem, len(self.username)])
        + self.username
    )
    authcode = hmac.new(self.kuid, bytes(hmacdata), self.currhashlib).digest()
    self.send_payload(
        bytearray([tag, 0, 0, 0]) + self.clientsessionid + self.Rc + self.uuiddata + authcode,
        constants.payload_types["rakp2"],
        retry=False,
    )


def _got_rakp3(self: Any, data: bytearray) -> None:
    tag = data[0]
    if data[1] != 0 or not hasattr(self, "Rc"):
        return  # the client did not like our RAKP 2 (or never got one)
    role_name = struct.pack("2B", self.rolem, len(self.username)) + self.username
    expected = hmac.new(
        self.kuid, bytes(self.Rc + self.clientsessionid) + role_name, self.currhashlib
    ).digest()
    if not hmac.compare_digest(expected, bytes(data[8:])):
        self.send_payload(  # fix 4
            bytearray([tag, _INVALID_INTEGRITY_CHECK, 0, 0]) + self.clientsessionid,
            constants.payload_types["rakp4"],
            retry=False,
        )
        return
    self.sik = hmac.new(self.kg, bytes(self.Rm + self.Rc) + role_name, self.currhashlib).digest()
    self.k1 = hmac.new(self.sik, b"\x01" * 20, self.currhashlib).digest()
    self.k2 = hmac.new(self.sik, b"\x02" * 20, self.currhashlib).digest()
    self.aeskey = self.k2[0:16]
    self.localsid = struct.unpack("<I", self.managedsessionid)[0]
    self.ipmicallback = self.handle_client_request
    self._send_rakp4(tag, 0)


def _send_rakp4(self: Any, tag: int, status: int) -> None:
    icvdata = bytes(self.Rm + self.managedsessionid + self.uuiddata)
    icv = hmac.new(self.sik, icvdata, self.currhashlib).digest()[: self.currhashlen]
    self.send_payload(
        bytearray([tag, status, 0, 0]) + self.clientsessionid + icv,
        constants.payload_types["rakp4"],
        retry=False,
    )
    self.confalgo = "aes"
    self.integrityalgo = "sha1" if self.currhashlen == 12 else "sha256"  # only tested for truth
    self.sequencenumber = 1
    self.sessionid = struct.unpack("<I", bytes(self.clientsessionid))[0]


def _server_session_sessionless_data(self: Any, data: Any, sockaddr: Any) -> None:
    """Fix 3: a server session hands packets outside any session to its BMC."""
    self.bmc.sessionless_data(data, sockaddr)


def _send_cipher_suites(
    self: Any,
    myaddr: int,
    mylun: int,
    clientaddr: int,
    clientlun: int,
    clientseq: int,
    data: Any,
    sockaddr: Any,
) -> None:
    """Fix 2: list suites 17 and 3, paged by the request's list index (16 bytes per page)."""
    index = data[22] & 0x3F if len(data) > 22 else 0
    records = _CIPHER_RECORDS[index * 16 : index * 16 + 16]
    ipmihdr = bytearray([clientaddr, clientlun | (7 << 2)])
    ipmihdr.append(ipmisession._checksum(*ipmihdr))
    body = bytearray([myaddr, mylun | clientseq << 2, 0x54, 0x00, 0x01]) + records
    body.append(ipmisession._checksum(*body))
    msg = ipmihdr + body
    header = bytearray(b"\x06\x00\xff\x07\x06\x00" + b"\x00" * 8) + struct.pack("<H", len(msg))
    ipmisession._io_sendto(self.serversocket, header + msg, sockaddr)


# fix 5: the longest a waiting caller sleeps before it looks at its session's queue again
ANSWER_POLL_SECONDS = 0.05


def _wait_for_answer(session: Any, timeout: float) -> None:
    """Fix 5: ``_io_wait`` for one session, bounded so that an answer that came before the
    wake-up was queued costs at most ANSWER_POLL_SECONDS, not pyghmi's retry timer.

    (Returning at once when the session's queue is not empty was tried first: it let two threads
    work one session's queue during logins and left about one login in a thousand hanging.)"""
    if session.pktqueue:
        timeout = 0.0
    ipmisession._io_wait(min(timeout, ANSWER_POLL_SECONDS), session.sockaddr)


def _awaitresponse(self: Any, retry: Any, netfn: int, command: int) -> None:
    """pyghmi's ``Session.awaitresponse`` with fix 5; otherwise the same steps."""
    self.awaitingresponse = True
    try:
        alltimeout = ipmisession._monotonic_time() + (self._getmaxtimeout() * 2)
        while (
            retry
            and ipmisession.unmatched(self.lastresponse, netfn, command)
            and (self.logging or self.logged or self.onlogpayload)
        ):
            _wait_for_answer(self, self.expiration - ipmisession._monotonic_time())
            while self.iterwaiters:
                self.iterwaiters.pop()({"success": True})
            self.process_pktqueue()
            if ipmisession._monotonic_time() > alltimeout:
                self._mark_broken()
                raise ipmisession.exc.IpmiException("Session no longer connected")
            with ipmisession.util.protect(ipmisession.WAITING_SESSIONS):
                if (
                    self in self.waiting_sessions
                    and self.expiration < ipmisession._monotonic_time()
                ):
                    self.waiting_sessions.pop(self, None)
                    if not self.lastpayload and not self.logging:
                        return
                    self._timedout()
    finally:
        self.awaitingresponse = False


_original_xmit: Any = None


def _xmit_packet(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Fix 6: never transmit (nor take WAITING_SESSIONS) while holding KEEPALIVE_SESSIONS."""
    lock = ipmisession.KEEPALIVE_SESSIONS
    if lock._is_owned():
        state = lock._release_save()  # what threading.Condition does around a wait
        try:
            return _original_xmit(self, *args, **kwargs)
        finally:
            lock._acquire_restore(state)
    return _original_xmit(self, *args, **kwargs)


def apply() -> None:
    """Install the fixes (idempotent). Refuses any pyghmi release but the one they were made for."""
    global _applied
    if _applied:
        return
    from importlib.metadata import version

    have = version("pyghmi")
    if have != PYGHMI_VERSION:
        raise RuntimeError(
            f"drivers/bmc/pyghmi_fixes.py is written for pyghmi {PYGHMI_VERSION}, found {have}; "
            "re-check each fix against the new release before changing the pin"
        )
    ipmisession._io_sendto = _sendto
    global _original_xmit
    _original_xmit = ipmisession.Session._xmit_packet
    ipmisession.Session._xmit_packet = _xmit_packet
    ipmisession.Session.awaitresponse = _awaitresponse
    server = serversession.ServerSession
    server.create_open_session_response = _open_session_response
    server._got_rakp1 = _got_rakp1
    server._got_rakp3 = _got_rakp3
    server._send_rakp4 = _send_rakp4
    server.sessionless_data = _server_session_sessionless_data
    serversession.IpmiServer.send_cipher_suites = _send_cipher_suites
    _applied = True


__all__ = ["PYGHMI_VERSION", "apply"]
