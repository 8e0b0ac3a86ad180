"""One page per navigation entry."""
