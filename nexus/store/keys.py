"""Every Redis key Nexus uses, built in one place, all under the configured prefix.

Keys are Redis Cluster-safe: each Lua script's keys share one hash slot, through the
part of the name in braces (the hash tag).

- `{nexus}:...`: the money and the fleet's control, in one slot. A leader's fenced
  writes check the epoch in the same script as they write the month's ledger, and
  that check is only atomic within one slot (the fencing argument needs it atomic).
- `{nexus:tenant:<team or key>}:rate:...`: a tenant's rate-limit counters, in its own
  slot: the load of many tenants spreads over the shards. A key in a team is counted
  in its team's slot, since one check covers both.
- `{nexus:replica:<id>}:...`: each replica's published figures, in its own slot.

The layout, with redis-cli examples, is documented in docs/redis-keys.md.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tag = "{" + prefix + "}"  # the control slot's hash tag

    def spend_total(self, month: str) -> str:
        return f"{self.tag}:spend:{month}:total"

    def spend_by_backend(self, month: str) -> str:
        return f"{self.tag}:spend:{month}:by_backend"

    def spend_by_model(self, month: str) -> str:
        return f"{self.tag}:spend:{month}:by_model"

    def spend_by_day(self, month: str) -> str:
        return f"{self.tag}:spend:{month}:by_day"

    def spend_counted(self, request_id: str) -> str:
        return f"{self.tag}:spend:counted:{request_id}"

    def response(self, response_id: str) -> str:
        """String: one stored Responses API response (JSON), with its TTL. Outside the
        control slot: each response hashes to its own slot, spread over the shards."""
        return "{" + f"{self.prefix}:response:{response_id}" + "}"

    def lifecycle_claim(self, backend: str) -> str:
        """String, with a TTL: the token of the operation that has the backend."""
        return f"{self.tag}:lifecycle:claim:{backend}"

    def lifecycle_operation(self, operation_id: str) -> str:
        """String (JSON), 7-day TTL: one lifecycle operation's record."""
        return f"{self.tag}:lifecycle:op:{operation_id}"

    @property
    def lifecycle_operations(self) -> str:
        """Sorted set: operation ids scored by when they started (unix s)."""
        return f"{self.tag}:lifecycle:ops"

    @property
    def runtime_backends(self) -> str:
        """Hash: backend name -> JSON of a backend added at run time (`nexus backends
        add`); every replica, and a restarted one, serves it."""
        return f"{self.tag}:backends"

    def demand(self, hour: int) -> str:
        """Hash, 31-day TTL: model -> requests served in that hour (unix hours)."""
        return f"{self.tag}:demand:{hour}"

    @property
    def recommendations(self) -> str:
        """Hash: the leader's pre-warm recommendations (`record`: JSON), fenced."""
        return f"{self.tag}:fleet:recommendations"

    @property
    def leader(self) -> str:
        return f"{self.tag}:leader"

    @property
    def leader_epoch(self) -> str:
        return f"{self.tag}:leader:epoch"

    def budget_status(self, month: str) -> str:
        return f"{self.tag}:budget:{month}"

    @property
    def health(self) -> str:
        return f"{self.tag}:health"

    @property
    def engine(self) -> str:
        """Hash: backend name -> JSON of its engine's load signals, as the leader read
        them (`read_unix` says when)."""
        return f"{self.tag}:engine"

    def replica_metrics(self, replica_id: str) -> str:
        return f"{{{self.prefix}:replica:{replica_id}}}:metrics"

    def replica_card(self, replica_id: str) -> str:
        """What the dashboard shows of a replica: its state and recent decisions."""
        return f"{{{self.prefix}:replica:{replica_id}}}:dashboard"

    @property
    def replicas(self) -> str:
        return f"{self.tag}:replicas"

    def reserved_total(self, month: str) -> str:
        return f"{self.tag}:spend:{month}:reserved"

    def reservations(self, month: str) -> str:
        return f"{self.tag}:reservations:{month}"

    def reservation_expiry(self, month: str) -> str:
        return f"{self.tag}:reservations:{month}:expiry"

    def spend_by(self, month: str, kind: str) -> str:
        """by_key / by_team: a tenant key's or team's spend this month."""
        return f"{self.tag}:spend:{month}:by_{kind}"

    def reserved_by(self, month: str, kind: str) -> str:
        return f"{self.tag}:spend:{month}:reserved_by_{kind}"

    def tenant_records(self, kind: str) -> str:
        """keys / teams made through the admin API: name -> JSON record (hashed secret)."""
        return f"{self.tag}:tenants:{kind}"

    @property
    def tenants_version(self) -> str:
        return f"{self.tag}:tenants:version"

    def tenant_tag(self, slot_owner: str) -> str:
        """The hash tag of a tenant's rate counters: its team's subject, or its key's."""
        return f"{{{self.prefix}:tenant:{slot_owner}}}"

    def rate_requests(self, subject: str, slot_owner: str) -> str:
        return f"{self.tenant_tag(slot_owner)}:rate:{subject}:requests"

    def rate_tokens(self, subject: str, slot_owner: str) -> str:
        return f"{self.tenant_tag(slot_owner)}:rate:{subject}:tokens"
