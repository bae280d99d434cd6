;; FastCDC cut-point search (see fastcdc.ts for the algorithm and gear-wasm.ts for its use).
;; Memory: the gear table (256 x i32) at offset 0, data after it. cut(start, end, ...) takes
;; memory offsets and returns the chunk length, exactly as Chunker.cut does for buf[start, end).
;; Build: wat2wasm gear.wat -o gear.wasm, then embed its base64 in gear-wasm.ts.
(module
  (memory (export "memory") 1)
  (func (export "cut") (param $start i32) (param $end i32) (param $min i32) (param $avg i32) (param $max i32) (param $maskS i32) (param $maskL i32) (result i32)
    (local $avail i32) (local $limit i32) (local $normal i32) (local $h i32) (local $i i32) (local $normalEnd i32) (local $limitEnd i32)
    (local.set $avail (i32.sub (local.get $end) (local.get $start)))
    (if (i32.le_u (local.get $avail) (local.get $min)) (then (return (local.get $avail))))
    (local.set $limit (select (local.get $avail) (local.get $max) (i32.lt_u (local.get $avail) (local.get $max))))
    (local.set $normal (select (local.get $limit) (local.get $avg) (i32.lt_u (local.get $limit) (local.get $avg))))
    (local.set $i (i32.add (local.get $start) (local.get $min)))
    (local.set $normalEnd (i32.add (local.get $start) (local.get $normal)))
    (local.set $limitEnd (i32.add (local.get $start) (local.get $limit)))
    (block $done1
      (loop $l1
        (br_if $done1 (i32.ge_u (local.get $i) (local.get $normalEnd)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l1 (i32.and (local.get $h) (local.get $maskS)))
        (return (i32.sub (local.get $i) (local.get $start)))))
    (block $done2
      (loop $l2
        (br_if $done2 (i32.ge_u (local.get $i) (local.get $limitEnd)))
        (local.set $h (i32.add (i32.shl (local.get $h) (i32.const 1)) (i32.load (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l2 (i32.and (local.get $h) (local.get $maskL)))
        (return (i32.sub (local.get $i) (local.get $start)))))
    (local.get $limit)))
