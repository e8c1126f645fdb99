from piccolo.columns import Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class AuditEntry(Table, tablename="audit_entry"):
    """Who changed what, when and from where: one row per HQ or store-manager write, never updated.

    `changes` is JSON, {field: [before, after]} of the fields the write changed (a creation's befores are
    null, a deletion's afters). The actor's name and role are copied in, so that the row reads the same
    after the account is renamed, re-roled or gone.
    """

    at = Timestamptz(index=True)
    actor_id = Integer(null=True, default=None, index=True)  # the staff account; null: the system
    actor_username = Varchar(length=64, default="")
    actor_role = Varchar(length=32, default="")
    client = Varchar(length=64, default="")  # the address the request came from
    request_id = Varchar(length=64, default="")
    action = Varchar(length=48)  # what was done, e.g. staff.update, groupbuy_campaign.close
    entity = Varchar(length=32)  # the kind of row, e.g. staff, store, groupbuy_campaign
    entity_id = Varchar(length=64, default="")
    store_id = Integer(null=True, default=None)  # the store the row belongs to, when it belongs to one
    changes = Text(default="{}")
