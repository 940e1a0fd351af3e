"""Every name and limit the controller shares with Kamailio, rtpengine and Redis: the one copy.

Python imports these constants; Kamailio gets them from :func:`kamailio_wire_defines`, which the local
stack (``controller/devstack/stack.py``) writes into the Kamailio main file it renders, and the Ansible
role (``ansible/roles/xfer_node``) into the same file on a node, as ``#!substdef`` lines. A substdef
replaces its name everywhere in the script that follows, inside strings and pseudo-variables too
(``$sht(WIRE_HTABLE=>WIRE_HT_LEG$ci)``), so ``kamailio/kamailio.cfg`` holds no copy of any of them.

Redis key schema: docs/ARCHITECTURE.md ("Redis key schema").
"""

from __future__ import annotations

import re
import sys
from typing import Any

# -- Redis ------------------------------------------------------------------------------------
CONV_KEY = "xfer:conv:{}"  # hash: one conversation's facts (and the machine's snapshot)
CALL_KEY = "xfer:call:{}"  # string: conversation id of a SIP Call-ID
EVENTS_STREAM = "xfer:events"  # stream: the event log
INBOUND_STREAM = "xfer:kamailio"  # stream: Kamailio's notifications to the controller
INBOUND_GROUP = "controllers"  # the controllers' consumer group on INBOUND_STREAM
REGISTRAR_KEY = "xfer:registrar"  # hash: user@domain -> HA1, read by Kamailio's registrar
LEG_KEY = "xfer:leg:{}"  # hash: a leg the controller originates
LIMIT_MINUTE_KEY = "xfer:limit:{}:outside:{}"  # string: a tenant's outside transfers begun in a minute
LIMIT_LIVE_KEY = "xfer:limit:{}:outside:live"  # zset: a tenant's outside transfers in progress
TIMERS_KEY = "xfer:timers"  # zset: conversation|timer scored by its deadline (ms)
VOICEMAILS_KEY = "xfer:voicemails"  # zset: voicemail message ids scored by their time (ms)
VOICEMAIL_KEY = "xfer:voicemail:{}"  # hash: one voicemail message's metadata
ROUTES_CURRENT_KEY = "xfer:routes:current"  # string: the version of the routing table new calls use
ROUTES_KEY = "xfer:routes:{}"  # string: a routing table (controller/routing/table.py) by its version
RTPENGINE_STARTED_KEY = "xfer:rtpengine:{}:started"  # string: when an rtpengine (by ng address) last started (s)

# -- Kamailio ---------------------------------------------------------------------------------
#: The htable the controller writes over JSON-RPC (htable.sets / htable.delete), and its key prefixes
#: (each followed by the SIP Call-ID; BRANCH_PREFIX by Call-ID ":" branch URI).
HTABLE = "xfer"
LEG_PREFIX = "leg:"  # rtpengine overrides of a leg the controller originated
TRANSFEROR_PREFIX = "transferor:"  # the transferor's tag while a transfer runs
GONE_PREFIX = "gone:"  # set by Kamailio when it absorbed the transferor's BYE
FEATURE_PREFIX = "feat:"  # a call whose state machine runs: Kamailio tells the controller its dialog events
BRANCH_PREFIX = "br:"  # written and read by Kamailio alone: which extension a branch rings
#: Kamailio's: how many requests of ours (a REFER's NOTIFYs, a REFER to the trunk) went to one side of the
#: dialog, by "<side>:<Call-ID>" (route[CSEQ_SHIFT]); SHIFTED_PREFIX marks a dialog that has any.
NOTIFY_CSEQ_PREFIX = "ncseq:"
SHIFTED_PREFIX = "nshift:"
#: Kamailio's: the REFER it sent the client's trunk, "<side> <CSeq> <transfer id>" (route[FAR_END_NOTIFY])
FAR_REFER_PREFIX = "frefer:"
#: User part of the Contact of a leg the controller originates: Kamailio answers its in-dialog requests.
LEG_CONTACT_USER = "xfer"
#: Header naming the pending leg on the controller's own INVITE; every X-Xfer- header is the node's own.
LEG_HEADER = "X-Xfer-Leg"
HEADER_PREFIX = "X-Xfer-"
#: Group of the refusal counters Kamailio keeps (stats.get_statistics "xfer:").
STATS_GROUP = "xfer"

# -- systemd ------------------------------------------------------------------------------------
#: The name of the DTMF socket the supervisor holds for the controller (xfer-controller.socket's
#: FileDescriptorName; the local stack hands it over the same way): controller/adapters/listen_fds.py
DTMF_SOCKET_NAME = "dtmf"

# -- limits shared by the configuration, Kamailio and rtpengine --------------------------------
#: Default of node.max_call_duration_s: the longest call; Kamailio's dialog timeout, its htable's
#: autoexpire and rtpengine's final-timeout are all this one value of the configuration.
MAX_CALL_DURATION_S = 4 * 3600
#: The longest a tenant lets a transfer target ring (transfer_rules.*.no_answer_timeout_s).
MAX_RING_S = 300
#: Kamailio lets a leg the controller originates ring this much longer than the tenant's no-answer
#: time: the machine's own timer, which CANCELs it, must come first.
RING_TIMEOUT_MARGIN_S = 5.0
#: fr_inv_timer of the controller's own INVITEs (tm.t_uac_start cannot set one per transaction): the
#: longest ring plus the margin and some slack; and their max_inv_lifetime.
ORIGINATE_FR_INV_MS = int((MAX_RING_S + RING_TIMEOUT_MARGIN_S + 5) * 1000)
ORIGINATE_MAX_INV_LIFETIME_MS = ORIGINATE_FR_INV_MS + 20_000

_VALUE_RE = re.compile(r"[A-Za-z0-9:_.-]+")


def kamailio_wire_names() -> dict[str, str]:
    """The names every node shares (no node-specific value): what the Ansible role's vars hold."""
    return {
        "WIRE_HTABLE": HTABLE,
        "WIRE_HT_LEG": LEG_PREFIX,
        "WIRE_HT_TRANSFEROR": TRANSFEROR_PREFIX,
        "WIRE_HT_GONE": GONE_PREFIX,
        "WIRE_HT_BRANCH": BRANCH_PREFIX,
        "WIRE_HT_NOTIFY_CSEQ": NOTIFY_CSEQ_PREFIX,
        "WIRE_HT_SHIFTED": SHIFTED_PREFIX,
        "WIRE_HT_FAR_REFER": FAR_REFER_PREFIX,
        "WIRE_REGISTRAR": REGISTRAR_KEY,
        "WIRE_LEG_USER": LEG_CONTACT_USER,
        "WIRE_LEG_HEADER": LEG_HEADER,
        "WIRE_HEADER_PREFIX": HEADER_PREFIX,
        "WIRE_STATS": STATS_GROUP,
        "WIRE_FR_INV_MS": str(ORIGINATE_FR_INV_MS),
        "WIRE_INV_LIFETIME_MS": str(ORIGINATE_MAX_INV_LIFETIME_MS),
    }


def kamailio_wire_defines(max_call_duration_s: int) -> dict[str, str]:
    """Every WIRE_* name kamailio/kamailio.cfg uses, with its value for a node whose configuration
    says ``node.max_call_duration_s``."""
    defines = kamailio_wire_names() | {"WIRE_MAX_CALL_S": str(int(max_call_duration_s))}
    for name, value in defines.items():
        if not _VALUE_RE.fullmatch(value):  # a substdef's replacement text: no delimiter, no regex syntax
            raise ValueError(f"{name}={value!r}: not a plain wire value")
    return defines


def substdef_lines(defines: dict[str, str]) -> list[str]:
    """Kamailio preprocessor lines that replace each name by its value in the script that follows."""
    return [f'#!substdef "!{name}!{value}!g"' for name, value in defines.items()]


#: Generated from ansible_vars(): `python -m controller.wire > ansible/roles/xfer_node/vars/wire.yml`
ANSIBLE_VARS_FILE = "ansible/roles/xfer_node/vars/wire.yml"


def ansible_vars() -> dict[str, Any]:
    """What the Ansible role takes from here: the wire names, the node defaults of the configuration
    (the role merges the node's own configuration over them) and the control interface's user name."""
    from controller.config import Node
    from controller.credentials import KAMAILIO_RPC_USER

    return {
        "xfer_wire_names": kamailio_wire_names(),
        "xfer_node_defaults": Node().model_dump(mode="json", exclude={"secrets"}),
        "xfer_rpc_users": {"kamailio_rpc": KAMAILIO_RPC_USER},
    }


def ansible_vars_text() -> str:
    import yaml

    header = ("# Generated by `python -m controller.wire` from controller/wire.py and the configuration's\n"
              "# defaults: do not edit (tests/unit/test_wire_names.py checks it is current).\n")
    return header + yaml.safe_dump(ansible_vars(), sort_keys=False, default_flow_style=False)


if __name__ == "__main__":
    sys.stdout.write(ansible_vars_text())
