"""Sending one message on one channel: Slack, a signed webhook, e-mail (STARTTLS) or PagerDuty.

Each sender raises :class:`DeliveryError` with a short reason (never a secret) when the receiver
refuses or cannot be reached; the caller retries with a backoff.
"""

from __future__ import annotations

import email.message
import logging
import smtplib
import ssl
import threading
import time
from typing import Any

import httpx
import orjson

from celery_monitor.notify import secrets, signing
from celery_monitor.notify.messages import RESOLVED, TEST, Message
from celery_monitor.notify.model import PAGERDUTY_URL, Channel

TIMEOUT = 10.0


class _QuietWhileSending(logging.Filter):
    """httpx logs every request's URL at INFO; a Slack or webhook URL is a secret, so not these."""

    def __init__(self) -> None:
        super().__init__()
        self.sending = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.sending, "on", False)


_QUIET = _QuietWhileSending()
logging.getLogger("httpx").addFilter(_QUIET)


class DeliveryError(Exception):
    """A failed attempt; ``permanent`` when trying again cannot help (a 4xx other than 429)."""

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


def _post(client: httpx.Client, url: str, body: bytes, headers: dict[str, str]) -> None:
    _QUIET.sending.on = True
    try:
        response = client.post(url, content=body, headers={"Content-Type": "application/json", **headers},
                               timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        # The exception's text may carry the URL (a Slack URL is a secret): only its kind is told.
        raise DeliveryError(f"no answer ({type(exc).__name__})") from None
    finally:
        _QUIET.sending.on = False
    if response.status_code >= 300:
        permanent = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
        raise DeliveryError(f"HTTP {response.status_code}", permanent)


def _secret(channel: Channel, key: str) -> str:
    try:
        return secrets.resolve(str(channel.options.get(key) or ""))
    except secrets.SecretError as exc:
        raise DeliveryError(f"{key}: {exc}", permanent=True) from None


def slack_text(message: Message) -> str:
    """The message with Slack's control characters escaped: a task's exception saying ``<!channel>``
    must not notify a whole channel, nor ``<https://...|...>`` become a link."""
    return message.text().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(client: httpx.Client, channel: Channel, message: Message) -> None:
    _post(client, _secret(channel, "url"), orjson.dumps({"text": slack_text(message)}), {})


def webhook(client: httpx.Client, channel: Channel, message: Message) -> None:
    body = orjson.dumps(message.as_json())
    timestamp = int(time.time())
    headers = {signing.TIMESTAMP_HEADER: str(timestamp),
               signing.SIGNATURE_HEADER: signing.signature(_secret(channel, "secret"), timestamp, body),
               signing.DELIVERY_HEADER: message.id}
    _post(client, _secret(channel, "url"), body, headers)


def pagerduty(client: httpx.Client, channel: Channel, message: Message) -> None:
    event: dict[str, Any] = {"routing_key": _secret(channel, "routing_key"), "dedup_key": message.dedup_key,
                             "event_action": "resolve" if message.status == RESOLVED else "trigger"}
    if message.status != RESOLVED:
        event["payload"] = {"summary": message.title[:1024], "source": "celery-monitor",
                            "severity": message.severity, "component": message.subject,
                            "group": message.rule, "class": message.kind,
                            "custom_details": {"count": message.count, "details": message.details}}
        event["links"] = [{"href": link.url, "text": link.title} for link in message.links]
    if message.status == TEST:
        event["dedup_key"] = f"{message.dedup_key}/{message.id}"
    url = str(channel.options.get("url") or PAGERDUTY_URL)
    _post(client, url, orjson.dumps(event), {})


def mail(channel: Channel, message: Message) -> None:
    options = channel.options
    mail_message = email.message.EmailMessage()
    mail_message["Subject"] = message.title[:200]
    mail_message["From"] = options["sender"]
    mail_message["To"] = ", ".join(options["to"])
    mail_message.set_content(message.text())
    try:
        with smtplib.SMTP(options["host"], int(options.get("port") or 587), timeout=TIMEOUT) as smtp:
            if options.get("starttls", True):
                context = ssl.create_default_context(cafile=options.get("ca_certs") or None)
                smtp.starttls(context=context)
            if options.get("username"):
                smtp.login(options["username"], _secret(channel, "password"))
            smtp.send_message(mail_message)
    except smtplib.SMTPAuthenticationError:
        raise DeliveryError("the SMTP server refused the login", permanent=True) from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600) from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryError(f"SMTP failed ({type(exc).__name__})") from None


def send(client: httpx.Client, channel: Channel, message: Message) -> None:
    if channel.kind == "slack":
        slack(client, channel, message)
    elif channel.kind == "webhook":
        webhook(client, channel, message)
    elif channel.kind == "pagerduty":
        pagerduty(client, channel, message)
    else:
        mail(channel, message)
