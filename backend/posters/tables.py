from piccolo.columns import Bytea, ForeignKey, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.table import Table

from backend.members.tables import Member


class MemberAvatar(Table, tablename="member_avatar"):
    """A member's uploaded avatar, re-encoded by us (a square JPEG), named by the digest of its bytes.

    Kept in the database so that every worker on every host serves and draws the same one.
    """

    member = ForeignKey(Member, null=False, on_delete=OnDelete.restrict, unique=True)
    digest = Varchar(length=64, index=True)
    image = Bytea()
    created_at = Timestamptz()
