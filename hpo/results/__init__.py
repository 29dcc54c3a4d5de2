"""Reading a study: the studies in a storage, a study's status, exports, the HTML report, and the transfer effect on
the held-out test split."""
