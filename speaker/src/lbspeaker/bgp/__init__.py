"""BGP-4 and BFD for the speaker: codec, sessions, policy and the BgpSpeaker manager."""

from .config import BgpConfig, parse_bgp_config
from .manager import Announcement, BgpSpeaker

__all__ = ["Announcement", "BgpConfig", "BgpSpeaker", "parse_bgp_config"]
