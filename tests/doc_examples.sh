#!/bin/sh
# Every code block of a document that follows a line
# "<!-- tools/examples/<file> -->" must be that file, byte for byte: the
# file is built and run by the tests, so the document cannot show code
# that no longer compiles or works.
#   tests/doc_examples.sh <source dir> <document>...
set -eu
src=$1
shift
status=0
for doc in "$@"; do
	awk -v src="$src" -v doc="$doc" '
	/^<!-- tools\/examples\/[^ ]* -->$/ {
		file = $2; want = 1; next
	}
	want && /^```/ {
		if (inblock) {
			inblock = 0; want = 0
			path = src "/" file
			got = ""
			while ((getline line < path) > 0)
				got = got line "\n"
			close(path)
			if (got != text) {
				printf "%s: the block for %s differs from the file\n",
					doc, file
				bad = 1
			} else
				n++
			next
		}
		inblock = 1; text = ""; next
	}
	inblock { text = text $0 "\n" }
	END {
		printf "%s: %d example block(s) match their files\n", doc, n
		exit bad
	}' "$src/$doc" || status=1
done
exit $status
