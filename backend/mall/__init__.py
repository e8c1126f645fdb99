"""Mall orders. Importing the package registers what a mall order does on its order's outcomes (`effects`)."""

from backend.mall import effects as effects
