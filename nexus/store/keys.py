"""Every Redis key Nexus uses, built in one place, all under the configured prefix.

The layout, with redis-cli examples, is documented in docs/redis-keys.md.
"""

from __future__ import annotations


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def spend_total(self, month: str) -> str:
        return f"{self.prefix}:spend:{month}:total"

    def spend_by_backend(self, month: str) -> str:
        return f"{self.prefix}:spend:{month}:by_backend"

    def spend_by_model(self, month: str) -> str:
        return f"{self.prefix}:spend:{month}:by_model"

    def spend_by_day(self, month: str) -> str:
        return f"{self.prefix}:spend:{month}:by_day"

    def spend_counted(self, request_id: str) -> str:
        return f"{self.prefix}:spend:counted:{request_id}"

    @property
    def leader(self) -> str:
        return f"{self.prefix}:leader"

    @property
    def leader_epoch(self) -> str:
        return f"{self.prefix}:leader:epoch"

    def budget_status(self, month: str) -> str:
        return f"{self.prefix}:budget:{month}"

    @property
    def health(self) -> str:
        return f"{self.prefix}:health"

    def replica_metrics(self, replica_id: str) -> str:
        return f"{self.prefix}:metrics:{replica_id}"

    def replica_card(self, replica_id: str) -> str:
        """What the dashboard shows of a replica: its state and recent decisions."""
        return f"{self.prefix}:dashboard:{replica_id}"

    @property
    def replicas(self) -> str:
        return f"{self.prefix}:replicas"

    def reserved_total(self, month: str) -> str:
        return f"{self.prefix}:spend:{month}:reserved"

    def reservations(self, month: str) -> str:
        return f"{self.prefix}:reservations:{month}"

    def reservation_expiry(self, month: str) -> str:
        return f"{self.prefix}:reservations:{month}:expiry"

    def spend_by(self, month: str, kind: str) -> str:
        """by_key / by_team: a tenant key's or team's spend this month."""
        return f"{self.prefix}:spend:{month}:by_{kind}"

    def reserved_by(self, month: str, kind: str) -> str:
        return f"{self.prefix}:spend:{month}:reserved_by_{kind}"

    def tenant_records(self, kind: str) -> str:
        """keys / teams made through the admin API: name -> JSON record (hashed secret)."""
        return f"{self.prefix}:tenants:{kind}"

    @property
    def tenants_version(self) -> str:
        return f"{self.prefix}:tenants:version"

    def rate_requests(self, subject: str) -> str:
        return f"{self.prefix}:rate:{subject}:requests"

    def rate_tokens(self, subject: str) -> str:
        return f"{self.prefix}:rate:{subject}:tokens"
