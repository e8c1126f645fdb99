from enum import Enum

from piccolo.columns import Boolean, DoublePrecision, ForeignKey, Integer, Text, Timestamptz, Varchar
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.constraints import Check, Unique
from piccolo.table import Table


class StaffRole(str, Enum):
    cashier = "cashier"
    store_manager = "store_manager"
    hq_admin = "hq_admin"


class Store(Table, tablename="store"):
    code = Varchar(length=32, unique=True)
    name = Varchar(length=100)
    address = Varchar(length=255, default="")
    latitude = DoublePrecision(null=True, default=None)
    longitude = DoublePrecision(null=True, default=None)
    opening_hours = Varchar(length=100, default="")
    points_per_yuan = Integer(default=1)
    delivery_radius_m = Integer(default=0)  # mall orders delivered within this distance of the store; 0: pickup only
    landing_text = Text(default="")  # shown to every payer after paying here
    welcome_text = Text(default="")  # shown besides to a payer this payment made a member
    landing_url = Varchar(length=500, default="")
    active = Boolean(default=True)
    created_at = Timestamptz(default=TimestamptzNow())

    points_rate_in_range = Check((points_per_yuan >= 0) & (points_per_yuan <= 1000))
    delivery_radius_in_range = Check((delivery_radius_m >= 0) & (delivery_radius_m <= 100_000))


class Staff(Table, tablename="staff"):
    username = Varchar(length=64, unique=True)
    password_hash = Varchar(length=255, secret=True)
    role = Varchar(length=32, choices=StaffRole)
    display_name = Varchar(length=64, default="")
    active = Boolean(default=True)
    # Named by every token issued to the account; raised when its password is reset or it is deactivated, so
    # that every token issued before stops at once.
    token_version = Integer(default=0)
    created_at = Timestamptz(default=TimestamptzNow())


class StaffStore(Table, tablename="staff_store"):
    """The stores a staff account may act for; HQ admins act for every store without rows here."""

    staff = ForeignKey(Staff, null=False, on_delete=OnDelete.cascade)
    store = ForeignKey(Store, null=False, on_delete=OnDelete.restrict)

    one_row_per_pair = Unique([staff, store])
