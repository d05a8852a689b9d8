module github.com/braidnet/braid

go 1.26.8
