.PHONY: run test bench build lint

run:
	bash hack/dev.sh run

test:
	bash hack/dev.sh test

build:
	npm run build

lint:
	npm run lint

bench:
	npm run bench
