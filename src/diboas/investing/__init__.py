"""Investing: buy and sell crypto at price-locked quotes, FIFO lots, portfolio and P&L."""
