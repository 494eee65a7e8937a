#!/bin/bash
# Exits with one of the "expected" codes (0, 2) or an unexpected one (1), at random; with
# autorestart: unexpected, only the unexpected exit is restarted.
sleep 1
code=$(( RANDOM % 3 ))
echo "flaky: exiting with $code"
exit $code
