"""An aiosmtpd handler for tests: a real SMTP server that refuses some recipients.

Recipients starting with ``flaky`` get ``451`` (transient) on their first attempt and are
accepted afterwards; recipients starting with ``rejected`` always get ``550`` (permanent);
recipients starting with ``outage`` get ``451`` while a file named ``outage`` exists beside the
maildir (a relay outage the test switches on and off).
Accepted messages are stored in a maildir, like ``aiosmtpd.handlers.Mailbox``.
"""
import mailbox
import os


class Flaky:
    def __init__(self, maildir):
        self.mailbox = mailbox.Maildir(maildir)
        self.outage_flag = os.path.join(os.path.dirname(os.path.abspath(maildir)), "outage")
        self.refused_once = set()

    @classmethod
    def from_cli(cls, parser, *args):
        return cls(args[0])

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("rejected"):
            return "550 5.1.1 mailbox unavailable"
        if address.startswith("outage") and os.path.exists(self.outage_flag):
            return "451 4.3.2 relay outage"
        if address.startswith("flaky") and address not in self.refused_once:
            self.refused_once.add(address)
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.mailbox.add(envelope.original_content)
        return "250 Message accepted for delivery"
