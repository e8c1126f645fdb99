"""Referrals (拉新有礼). Importing the package registers its part in order outcomes and merges (`effects`)."""

from backend.referrals import effects as effects
