#!/bin/bash
# A one-shot preparation step the workers depend on (depends-on: prepare).
mkdir -p spool
echo "prepared spool directory $(pwd)/spool"
