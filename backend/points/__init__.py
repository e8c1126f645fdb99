"""The points ledger. Importing the package registers its part in every order's outcome (`effects`)."""

from backend.points import effects as effects
