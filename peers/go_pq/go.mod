module bakeoff/peers/go_pq

go 1.19

require github.com/lib/pq v1.10.7

// Built offline from Debian's golang-github-lib-pq-dev (1.10.7-2); see ../setup.sh.
replace github.com/lib/pq => /usr/share/gocode/src/github.com/lib/pq
