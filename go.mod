module github.com/arbor-go/arbor

go 1.24.0
