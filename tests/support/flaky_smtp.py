"""An aiosmtpd handler for tests: a real SMTP server that misbehaves for some recipients.

On their first attempt, recipients starting with
  ``flaky``  get ``451`` (transient) at RCPT,
  ``busy``   get ``421`` (service not available) at RCPT and the connection is closed,
  ``drop``   have the connection cut after the message was sent, before any answer,
  ``stall``  get no answer to their message for 30 s (the client must time out),
  ``lost``   have their message stored, and then the connection cut before the answer: the relay
             has it, the client cannot know (the case that makes at-least-once a duplicate);
and are accepted afterwards. Recipients starting with ``rejected`` always get ``550``
(permanent); recipients starting with ``outage`` get ``451`` while a file named ``outage``
exists beside the maildir (a relay outage the test switches on and off).

Accepted messages are stored in a maildir, like ``aiosmtpd.handlers.Mailbox``; a message cut
off (``drop``) or stalled is not stored, a ``lost`` one is. Every RCPT is appended to ``rcpt.log`` beside the maildir, so a
test can count attempts per recipient.
"""
import asyncio
import mailbox
import os


class Flaky:
    def __init__(self, maildir):
        self.mailbox = mailbox.Maildir(maildir)
        base = os.path.dirname(os.path.abspath(maildir))
        self.outage_flag = os.path.join(base, "outage")
        self.rcpt_log = os.path.join(base, "rcpt.log")
        self.failed_once = set()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(args[0])

    def first_time(self, address):
        if address in self.failed_once:
            return False
        self.failed_once.add(address)
        return True

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(self.rcpt_log, "a") as log:
            log.write(address + "\n")
        if address.startswith("rejected"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("outage") and os.path.exists(self.outage_flag):
            return "451 4.3.2 relay outage"
        if address.startswith("flaky") and self.first_time(address):
            return "451 4.3.0 try again later"
        if address.startswith("busy") and self.first_time(address):
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 service not available, closing transmission channel"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        first = envelope.rcpt_tos[0] if envelope.rcpt_tos else ""
        if first.startswith("drop") and self.first_time(first):
            server.transport.abort()
            return "250 never delivered"
        if first.startswith("lost") and self.first_time(first):
            self.mailbox.add(envelope.original_content)
            server.transport.abort()
            return "250 stored, but the answer never arrives"
        if first.startswith("stall") and self.first_time(first):
            await asyncio.sleep(30)
            server.transport.abort()
            return "250 never delivered"
        self.mailbox.add(envelope.original_content)
        return "250 Message accepted for delivery"
