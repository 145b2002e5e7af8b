"""The bridge's own participant in each live call: joining it (`participant`), hearing its chat
and each person's audio, and which process holds which call."""
