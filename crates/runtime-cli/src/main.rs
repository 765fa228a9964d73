fn main() {
    println!("berth-runtime: under construction");
}
