"""The speaker's per-protocol controllers: plain decision code, no I/O.

As MetalLB's speaker asks each protocol "should I announce this?"
(``layer2_controller.go``, ``bgp_controller.go``), the daemon hands these
controllers the desired state (``lbspeaker.desired``), the membership view
and this node's eligibility (``view``), and gets back what to announce where,
each with the reason ``/status`` shows:

- ``l2``: per service IP, the elected leader, and whether this node takes,
  keeps, re-announces or releases it (with the drain it keeps after).
- ``bgp``: per service IP, advertise or withdraw.

Forwarding's decisions (which backends each VIP:port goes to) are the pure
functions of ``lbspeaker.backends`` and ``lbspeaker.forwarding``.

The announcers (``layer2.L2Announcer``, ``bgp.manager.BgpSpeaker``) carry
the decisions out; ``status`` assembles ``/status`` and the per-address
metrics from the decisions.
"""
