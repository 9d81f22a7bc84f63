"""ShelfSense: IoT edge gateway plus cloud sync for smart inventory and cold chain."""
