"""Pure functions turning one verified provider payload into conversation events."""
