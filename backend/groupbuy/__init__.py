"""Group-buy presales. Importing the package registers what a seat does on its order's outcomes (`effects`)."""

from backend.groupbuy import effects as effects
