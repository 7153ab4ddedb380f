"""Pure decisions with `now` passed in: renewal timing, notice windows, names."""
