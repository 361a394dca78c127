.PHONY: run test demo-local bench build lint

run:
	bash hack/dev.sh run

test:
	bash hack/dev.sh test

demo-local:
	bash hack/dev.sh demo-local

build:
	npm run build

lint:
	npm run lint

bench:
	npm run bench
