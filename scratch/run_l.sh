cd $(dirname $0)/..
python3 tests/gpu/tune_in_process.py --rounds 5 build_tune/t_final.so build_tune/t_unroll1.so -- quick 1,2,1,2 "library packed" 2>&1 | grep -E "^M=|==" | awk '/==/{if(l)print l; l=$3" "$4": "; next}{m=substr($0,3,5)+0; t=substr($0,34,7)+0; l=l sprintf("%d %.2f | ", m, t)} END{print l}'
