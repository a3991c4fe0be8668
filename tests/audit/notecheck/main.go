// Verifies a C2SP signed note (checkpoint) with golang.org/x/mod/sumdb/note.
package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	vkey, _ := os.ReadFile(os.Args[1])
	msg, _ := os.ReadFile(os.Args[2])
	v, err := note.NewVerifier(string(trim(vkey)))
	if err != nil {
		fmt.Println("bad verifier key:", err)
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fmt.Println("does not verify:", err)
		os.Exit(1)
	}
	fmt.Printf("verified by %s (%08x):\n%s", n.Sigs[0].Name, n.Sigs[0].Hash, n.Text)
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
