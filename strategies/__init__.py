"""NautilusTrader strategies: baselines (buy-and-hold, SMA cross) and the NN signal strategies."""
