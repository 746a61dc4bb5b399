# What one reader's operations found in each phase of one step of scripts/sysvm/payload, one
# record a phase:
#
#   reads step=STEP reader=READER phase=PHASE ops=N failed=N errors=RESULT:N,...|- stall_ms=N outage_ms=N
#
#   awk -v step=STEP -v reader=READER -f summary.awk MARKS LOG
#
# MARKS: `PHASE T_US` lines in time order, each the start of a phase, the last one `end`.
# LOG: scripts/sysvm/reader.c's lines (START_US DURATION_US INDEX RESULT BYTES). An operation
# belongs to the phase it ended in, when its result was seen (a read the kill of the daemon
# cut short fails after the kill, though it began before). stall: the phase's longest
# operation. outage: the longest time without a successful operation ending, counted from the
# last success before it (so an outage that began in an earlier phase counts whole), up to
# the phase's end when no success came.
BEGIN { n = 0 }
FNR == NR { phase[n] = $1; at[n] = $2 + 0; n++; next }

# Ends phases cur..upto-1: the time since the last success up to each one's end.
function close_phases(upto,   q, g) {
  for (q = cur; q < upto; q++) {
    g = at[q + 1] - last_ok
    if (last_ok > 0 && g > outage[q]) outage[q] = g
  }
  cur = upto
}

{
  d = $2 + 0; e = $1 + d
  if (e < at[0] || e >= at[n - 1]) next
  p = 0
  for (i = 1; i < n - 1; i++) if (at[i] <= e) p = i
  if (p > cur) close_phases(p)
  ops[p]++
  if (d > stall[p]) stall[p] = d
  if ($4 == "OK") {
    if (last_ok > 0 && e - last_ok > outage[p]) outage[p] = e - last_ok
    last_ok = e
    next
  }
  failed[p]++
  if (!((p, $4) in count)) names[p] = names[p] (names[p] == "" ? "" : " ") $4
  count[p, $4]++
}

END {
  close_phases(n - 1)
  for (p = 0; p < n - 1; p++) {
    errors = ""
    k = split(names[p], a, " ")
    for (j = 1; j <= k; j++) errors = errors (j > 1 ? "," : "") a[j] ":" count[p, a[j]]
    printf "reads step=%s reader=%s phase=%s ops=%d failed=%d errors=%s stall_ms=%d outage_ms=%d\n",
      step, reader, phase[p], ops[p], failed[p], (errors == "" ? "-" : errors),
      stall[p] / 1000, outage[p] / 1000
  }
}
